"""Watching the app run: the inspector page (`inspector`) and what it shows (`survey`)."""
