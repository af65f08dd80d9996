"""The project's own spaCy pipeline: lookup lemmatizer plus entity patterns from data/spacy."""
