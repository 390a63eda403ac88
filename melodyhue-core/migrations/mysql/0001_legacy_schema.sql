-- The schema of the earlier (Python) MelodyHue service, exactly as it made it on MariaDB.
-- On a database that service made, every statement is a no-op; on an empty database it
-- creates the same tables. 0002 then brings them to what this version needs.

CREATE TABLE IF NOT EXISTS `api_users` (
  `id` varchar(32) NOT NULL,
  `username` varchar(80) NOT NULL,
  `email` varchar(255) NOT NULL,
  `password_hash` varchar(255) NOT NULL,
  `role` varchar(16) NOT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  `last_login_at` datetime DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `ix_api_users_email` (`email`),
  KEY `ix_api_users_username` (`username`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_overlays` (
  `id` varchar(32) NOT NULL,
  `owner_id` varchar(32) NOT NULL,
  `name` varchar(120) NOT NULL,
  `color_hex` varchar(7) NOT NULL,
  `template` varchar(32) NOT NULL,
  `style` varchar(32) NOT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_api_overlays_owner_id` (`owner_id`),
  CONSTRAINT `api_overlays_ibfk_1` FOREIGN KEY (`owner_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_user_sessions` (
  `id` varchar(36) NOT NULL,
  `user_id` varchar(32) NOT NULL,
  `refresh_token` varchar(2048) NOT NULL,
  `created_at` datetime NOT NULL,
  `expires_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `refresh_token` (`refresh_token`) USING HASH,
  KEY `ix_api_user_sessions_user_id` (`user_id`),
  CONSTRAINT `api_user_sessions_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_twofa` (
  `user_id` varchar(32) NOT NULL,
  `secret` varchar(255) DEFAULT NULL,
  `enabled_at` datetime NOT NULL,
  `verified_at` datetime DEFAULT NULL,
  PRIMARY KEY (`user_id`),
  CONSTRAINT `api_twofa_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_spotify_secrets` (
  `user_id` varchar(32) NOT NULL,
  `client_id` varchar(255) DEFAULT NULL,
  `client_secret` varchar(255) DEFAULT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`user_id`),
  CONSTRAINT `api_spotify_secrets_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_spotify_tokens` (
  `user_id` varchar(32) NOT NULL,
  `refresh_token` varchar(1024) DEFAULT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`user_id`),
  CONSTRAINT `api_spotify_tokens_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_password_resets` (
  `token` varchar(64) NOT NULL,
  `user_id` varchar(32) NOT NULL,
  `created_at` datetime NOT NULL,
  `expires_at` datetime NOT NULL,
  `used_at` datetime DEFAULT NULL,
  PRIMARY KEY (`token`),
  KEY `ix_api_password_resets_user_id` (`user_id`),
  CONSTRAINT `api_password_resets_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_twofa_disable` (
  `token` varchar(64) NOT NULL,
  `user_id` varchar(32) NOT NULL,
  `created_at` datetime NOT NULL,
  `expires_at` datetime NOT NULL,
  `used_at` datetime DEFAULT NULL,
  PRIMARY KEY (`token`),
  KEY `ix_api_twofa_disable_user_id` (`user_id`),
  CONSTRAINT `api_twofa_disable_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_user_settings` (
  `user_id` varchar(32) NOT NULL,
  `theme` varchar(16) NOT NULL,
  `layout` varchar(32) NOT NULL,
  `avatar_mode` varchar(16) NOT NULL,
  `avatar_color` varchar(7) NOT NULL,
  `default_overlay_color` varchar(7) NOT NULL,
  PRIMARY KEY (`user_id`),
  CONSTRAINT `api_user_settings_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_login_challenges` (
  `id` varchar(36) NOT NULL,
  `user_id` varchar(32) NOT NULL,
  `created_at` datetime NOT NULL,
  `expires_at` datetime NOT NULL,
  `used_at` datetime DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_api_login_challenges_user_id` (`user_id`),
  CONSTRAINT `api_login_challenges_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_user_warnings` (
  `id` varchar(36) NOT NULL,
  `user_id` varchar(32) NOT NULL,
  `moderator_id` varchar(32) NOT NULL,
  `reason` text NOT NULL,
  `created_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_api_user_warnings_user_id` (`user_id`),
  KEY `ix_api_user_warnings_moderator_id` (`moderator_id`),
  CONSTRAINT `api_user_warnings_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`),
  CONSTRAINT `api_user_warnings_ibfk_2` FOREIGN KEY (`moderator_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `api_user_bans` (
  `id` varchar(36) NOT NULL,
  `user_id` varchar(32) NOT NULL,
  `moderator_id` varchar(32) NOT NULL,
  `reason` text NOT NULL,
  `created_at` datetime NOT NULL,
  `until` datetime DEFAULT NULL,
  `revoked_at` datetime DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_api_user_bans_user_id` (`user_id`),
  KEY `ix_api_user_bans_moderator_id` (`moderator_id`),
  CONSTRAINT `api_user_bans_ibfk_1` FOREIGN KEY (`user_id`) REFERENCES `api_users` (`id`),
  CONSTRAINT `api_user_bans_ibfk_2` FOREIGN KEY (`moderator_id`) REFERENCES `api_users` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
