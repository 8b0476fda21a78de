"""Probe item 11: token_counter, completion_cost, get_model_info, supports_* and the bundled price map."""

import json
import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import litellm

MODELS = [
    "openai/gpt-4o",
    "gpt-4o-mini",
    "gemini/gemini-2.0-flash",
    "anthropic/claude-3-5-sonnet-20241022",
    "ollama_chat/llama3.2:1b",
    "gemini/gemini-2.5-flash",
    "anthropic/claude-sonnet-4-5",
]
MSGS = [
    {"role": "system", "content": "You classify intents."},
    {"role": "user", "content": "Hello there, how are you today?"},
]
FIELDS = (
    "max_input_tokens",
    "max_output_tokens",
    "input_cost_per_token",
    "output_cost_per_token",
    "litellm_provider",
    "mode",
    "supports_function_calling",
    "supports_response_schema",
)

for m in MODELS:
    row = {"model": m}
    try:
        row["token_counter"] = litellm.token_counter(model=m, messages=MSGS)
    except Exception as e:
        row["token_counter"] = f"ERR {type(e).__name__}"
    try:
        row["completion_cost(1000 in, 500 out)"] = (
            litellm.completion_cost(model=m, prompt="", completion="", custom_llm_provider=None)
            if False
            else litellm.cost_per_token(model=m, prompt_tokens=1000, completion_tokens=500)
        )
    except Exception as e:
        row["cost_per_token"] = f"ERR {type(e).__name__}: {str(e)[:80]}"
    try:
        info = litellm.get_model_info(m)
        row["get_model_info"] = {k: info.get(k) for k in FIELDS}
        row["get_model_info.key"] = info.get("key")
    except Exception as e:
        row["get_model_info"] = (
            f"ERR {type(e).__module__}.{type(e).__name__} (ValueError subclass: {isinstance(e, ValueError)}): {str(e)[:100]}"
        )
    for fn in ("supports_response_schema", "supports_function_calling"):
        try:
            row[fn] = getattr(litellm, fn)(model=m)
        except Exception as e:
            row[fn] = f"ERR {type(e).__name__}"
    print(json.dumps(row, default=str))

# completion_cost on a response object built locally (no network)
resp = litellm.ModelResponse(
    model="gpt-4o-mini", usage=litellm.Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)
)
print("completion_cost(ModelResponse gpt-4o-mini 1000/500):", litellm.completion_cost(completion_response=resp))
print(
    "completion_cost(model=, prompt=, completion=):",
    litellm.completion_cost(model="gpt-4o-mini", prompt="hello world", completion="hi"),
)

# the bundled JSON, read as data
pkg = os.path.dirname(litellm.__file__)
path = os.path.join(pkg, "model_prices_and_context_window_backup.json")
print("price map:", path, os.path.getsize(path), "bytes")
data = json.load(open(path))
print("entries:", len(data), "sample_spec keys:", sorted(data.get("sample_spec", {}))[:40])
for key in [
    "gpt-4o",
    "openai/gpt-4o",
    "gpt-4o-mini",
    "gemini/gemini-2.0-flash",
    "gemini-2.0-flash",
    "claude-3-5-sonnet-20241022",
    "anthropic/claude-3-5-sonnet-20241022",
    "ollama/llama3.2:1b",
    "ollama_chat/llama3.2:1b",
    "ollama/llama3.2",
]:
    v = data.get(key)
    print(f"  [{key!r}]:", None if v is None else {k: v.get(k) for k in FIELDS})
print("ollama keys:", [k for k in data if k.startswith("ollama")][:30])
print(
    "cost.json:",
    os.path.getsize(os.path.join(pkg, "cost.json")),
    "bytes",
    list(json.load(open(os.path.join(pkg, "cost.json"))))[:5],
)
