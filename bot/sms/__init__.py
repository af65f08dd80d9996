"""SMS over Twilio: webhook signatures, carrier keywords, phone numbers, outbound client, stand-in.

These are the parts the SMS channel is built on; each module is small and free of Rasa and the
database, so it can be tested on its own.
"""
