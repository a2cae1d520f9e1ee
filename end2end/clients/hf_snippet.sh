#!/bin/sh
# The Hugging Face Inference API docs' cURL example; only the URL and token differ.
curl -sS "$WICK_MODEL_URL" \
	-X POST \
	-d '{"inputs": "Can you please let us know more details about your "}' \
	-H 'Content-Type: application/json' \
	-H "Authorization: Bearer $WICK_TOKEN"
