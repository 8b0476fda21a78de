"""Where director.acompletion spends its time over a bare Router: bare, Router + our callbacks,
Director with a fixed tier, Director with the strategy (c=1 p50, alternating rounds).

    .venv/bin/python scripts/dev/router_overhead_ablation.py
"""
import asyncio, os, time, statistics
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
from director_llm import Director
from director_llm.config.loading import parse_config_text
from director_llm.testing import FakeProviderServer, Reply
import litellm
M=[{"role":"user","content":"quero criar uma tarefa para amanhã"}]
async def lat(fn, n=300):
    out=[]
    for _ in range(n):
        t=time.perf_counter(); await fn(); out.append(time.perf_counter()-t)
    return statistics.median(out)*1000
async def main():
    with FakeProviderServer() as s:
        s.set_default(Reply(text="ok", usage=(20,5)))
        os.environ["BK"]="sk-bench-000000000000"
        d = Director(parse_config_text(f'[llm]\nnum_retries = 0\n[providers.openai]\nmodels = ["gpt-4o-mini"]\nbase_url = "{s.base_url}/v1"\napi_key_env = "BK"\n'))
        router = d.router
        ours = list(litellm.callbacks)
        bare = litellm.Router(model_list=[{"model_name":"m","litellm_params":d.providers["openai/gpt-4o-mini"].litellm_params()}], num_retries=0)
        variants = {
          "bare": (False, lambda: bare.acompletion(model="m", messages=M)),
          "router+callbacks": (True, lambda: router.acompletion(model="balanced", messages=M, metadata={"director":{"instance": d.built.instance_id}})),
          "director tier": (True, lambda: d.acompletion(M, tier="balanced")),
          "director full": (True, lambda: d.acompletion(M)),
        }
        for name,(cb,fn) in variants.items():
            litellm.callbacks[:] = ours if cb else []
            await lat(fn, 30)
        res={k:[] for k in variants}
        for _ in range(4):
            for name,(cb,fn) in variants.items():
                litellm.callbacks[:] = ours if cb else []
                res[name].append(await lat(fn, 150))
        for k,v in res.items(): print(f"{k:20} {statistics.median(v):.3f} ms")
asyncio.run(main())
