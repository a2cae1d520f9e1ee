# The Hugging Face Inference API docs' Python example; only the URL and token differ.
import os
import json
import requests

API_URL = os.environ["WICK_MODEL_URL"]
headers = {"Authorization": f"Bearer {os.environ['WICK_TOKEN']}"}

def query(payload):
    response = requests.post(API_URL, headers=headers, json=payload)
    return response.json()

output = query({
    "inputs": "Can you please let us know more details about your ",
})
print(json.dumps(output))
