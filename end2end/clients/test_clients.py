"""Wick's APIs through client libraries nobody here wrote: OpenAI's `openai`
package and Hugging Face's `huggingface_hub`, used as their documentation
shows, with only the address and the token pointed at Wick.

Run by server/tests/clients.rs with WICK_BASE (http://host:port), WICK_TOKEN
and WICK_MODEL set, against a real `wick` serving the real model.
"""
import json
import os
import subprocess
import sys
import unittest

import openai
from huggingface_hub import InferenceClient

BASE = os.environ["WICK_BASE"]
TOKEN = os.environ["WICK_TOKEN"]
MODEL = os.environ["WICK_MODEL"]
HERE = os.path.dirname(os.path.abspath(__file__))


class OpenAIClient(unittest.TestCase):
    def setUp(self):
        self.client = openai.OpenAI(base_url=f"{BASE}/v1", api_key=TOKEN)

    def test_models(self):
        ids = [m.id for m in self.client.models.list()]
        self.assertEqual(ids, [MODEL])

    def test_chat_completion(self):
        r = self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            temperature=0,
        )
        self.assertEqual(r.object, "chat.completion")
        self.assertTrue(r.choices[0].message.content)
        self.assertIn(r.choices[0].finish_reason, ("stop", "length"))
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)

    def test_chat_completion_streaming(self):
        stream = self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, usage = "", None, None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        self.assertTrue(text)
        self.assertIn(finish, ("stop", "length"))
        self.assertIsNotNone(usage)
        self.assertLessEqual(usage.completion_tokens, 8)

    def test_a_wrong_key_is_refused(self):
        bad = openai.OpenAI(base_url=f"{BASE}/v1", api_key="not-a-key")
        with self.assertRaises(openai.AuthenticationError):
            bad.models.list()

    def test_a_bad_parameter_is_a_bad_request(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            self.client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=7
            )
        self.assertIn("temperature", str(caught.exception))


class HuggingFaceClient(unittest.TestCase):
    def setUp(self):
        self.client = InferenceClient(model=f"{BASE}/models/{MODEL}", token=TOKEN)

    def test_text_generation(self):
        out = self.client.text_generation("The capital of France is", max_new_tokens=6)
        self.assertIsInstance(out, str)
        self.assertTrue(out)

    def test_text_generation_streaming(self):
        pieces = list(
            self.client.text_generation("Once upon a time", max_new_tokens=6, stream=True)
        )
        self.assertGreaterEqual(len(pieces), 2)
        self.assertTrue("".join(pieces))

    def test_text_generation_details(self):
        out = self.client.text_generation("Hello", max_new_tokens=4, details=True)
        self.assertEqual(out.details.generated_tokens, 4)
        self.assertEqual(out.details.finish_reason, "length")

    def test_chat_completion(self):
        client = InferenceClient(base_url=BASE, token=TOKEN)
        r = client.chat_completion(
            messages=[{"role": "user", "content": "Say hi."}], model=MODEL, max_tokens=8
        )
        self.assertTrue(r.choices[0].message.content)

    def test_chat_completion_streaming(self):
        client = InferenceClient(base_url=BASE, token=TOKEN)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat_completion(
                messages=[{"role": "user", "content": "Say hi."}],
                model=MODEL,
                max_tokens=8,
                stream=True,
            )
            if c.choices
        )
        self.assertTrue(text)


class DocsSnippets(unittest.TestCase):
    """The Hugging Face Inference API docs' examples, with only the URL and token changed."""

    def run_snippet(self, cmd):
        env = dict(os.environ, WICK_MODEL_URL=f"{BASE}/models/{MODEL}")
        out = subprocess.run(cmd, cwd=HERE, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout)
        self.assertIsInstance(result, list, result)
        self.assertTrue(result[0]["generated_text"].startswith("Can you please let us know"), result)

    def test_python_requests(self):
        self.run_snippet([sys.executable, "hf_snippet.py"])

    def test_javascript_fetch(self):
        self.run_snippet(["node", "hf_snippet.mjs"])

    def test_curl(self):
        self.run_snippet(["sh", "hf_snippet.sh"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
