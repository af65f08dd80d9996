"""Everything that is not a Rasa action: settings, database, services, channels, NLP, CLI."""
