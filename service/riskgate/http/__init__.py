"""The HTTP edge: body decoding, problem responses, and the caller's identity."""
