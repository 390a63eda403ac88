//! A fake Spotify: accounts and Web API endpoints served on loopback, with scripted answers.
