"""The accuracy-latency frontier of candidate students, alone and distilled, and the pick under a budget."""
