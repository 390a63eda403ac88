-- Spotify authorizations in progress (added): one row per `/spotify/auth/url`, named by the
-- SHA-256 hex of its OAuth `state`, with the user who asked and the `redirect_uri` the code
-- exchange must repeat. A row is deleted when its callback takes it, or once expired.
CREATE TABLE `api_spotify_authorizations` (
  `state_hash` varchar(64) NOT NULL,
  `user_id` varchar(32) NOT NULL,
  `redirect_uri` varchar(2048) NOT NULL,
  `created_at` datetime(3) NOT NULL,
  `expires_at` datetime(3) NOT NULL,
  PRIMARY KEY (`state_hash`),
  KEY `ix_api_spotify_authorizations_user_id` (`user_id`),
  KEY `ix_api_spotify_authorizations_expires_at` (`expires_at`),
  CONSTRAINT `api_spotify_authorizations_user_id_fk` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
