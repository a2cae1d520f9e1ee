// The Hugging Face Inference API docs' JavaScript example; only the URL and token differ.
async function query(data) {
	const response = await fetch(
		process.env.WICK_MODEL_URL,
		{
			headers: { Authorization: `Bearer ${process.env.WICK_TOKEN}` },
			method: "POST",
			body: JSON.stringify(data),
		}
	);
	const result = await response.json();
	return result;
}

query({"inputs": "Can you please let us know more details about your "}).then((response) => {
	console.log(JSON.stringify(response));
});
