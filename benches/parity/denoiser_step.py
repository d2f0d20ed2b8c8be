"""The same digits UNet in PyTorch (denoiser.py), timed like descent's
`cargo run --release -p descent-models --example denoiser_step`: a CFG sampling forward pass
on a batch of 128 and a training forward+backward on a batch of 32.

usage: denoiser_step.py MODEL_DIR [REPS]   (MODEL_DIR: an exported digits-diffusion model/)"""
import sys, os, time, torch
sys.path.insert(0, os.path.dirname(__file__))
from denoiser import Net

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
net = Net(sys.argv[1])
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
for label, b, backward in [("sampling forward, batch 128", 128, False), ("training forward+backward, batch 32", 32, True)]:
    x = torch.randn(b, 1, 8, 8)
    t = torch.tensor([(i * 7) % 1000 for i in range(b)], dtype=torch.float64)
    c = torch.tensor([i % 11 for i in range(b)])
    if backward:
        for v in net.w.values():
            v.requires_grad_(True)
    times = []
    for _ in range(reps + 3):
        t0 = time.perf_counter()
        if backward:
            y = net(x, t, c)
            (y ** 2).mean().backward()
        else:
            with torch.no_grad():
                y = net(x, t, c)
        times.append((time.perf_counter() - t0) * 1e3)
    times = sorted(times[3:])
    print(f"{label}: median {times[len(times) // 2]:.2f} ms over {reps}")
