"""The staff console: queue, handoffs, transcripts, conversation takeover and administration."""
