import sys, time, statistics, torch
torch.set_num_threads(1)
from models.bench_autoguide import _pyro_stepper
D = int(sys.argv[1]); gs = sys.argv[2].split(",")
runs = {g: _pyro_stepper(g, D) for g in gs}
for r in runs.values(): r(20)
res = {g: [] for g in gs}
for _ in range(9):
    for g, r in runs.items():
        t = time.process_time(); r(200); res[g].append((time.process_time()-t)/200*1e3)
for g, v in res.items(): print(D, g, round(statistics.median(v), 3), [round(x, 2) for x in v])
