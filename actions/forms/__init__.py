"""Form validation actions, one per form."""
