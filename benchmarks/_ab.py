import json
from benchmarks import data_parallel
from benchmarks.lm_throughput import steady
base = list(data_parallel.SETTINGS["multi30k-config"][2])
out = []
for workers, loaders in [(2, 1), (2, 0), (1, 1), (2, 1), (2, 0), (1, 0)]:
    data_parallel.SETTINGS["multi30k-config"] = ("translation", "multi30k", base + [f"data.num_workers={loaders}"])
    rates = data_parallel.rates("multi30k-config", workers, 3, 64, 4, "accumulation")
    out.append({"workers": workers, "loaders": loaders, "rates": rates, "steady": steady(rates)})
    print("RESULT", json.dumps(out[-1]), flush=True)
