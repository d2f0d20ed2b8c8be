"""Parity: descent's sampler against diffusers' own schedulers, same model and noise.

usage: parity.py MODEL_DIR OUT_DIR  — writes scheduler configs with diffusers' save_config,
the noise, and diffusers' final samples per scheduler; descent is then run on the same files.
"""
import sys, os, json, shutil, torch
from safetensors.torch import save_file
from diffusers import DDIMScheduler, EulerDiscreteScheduler
sys.path.insert(0, os.path.dirname(__file__))
from denoiser import Net

model_dir, out = sys.argv[1], sys.argv[2]
n, steps = 8, 10
w = float(os.environ.get("W", "7.5"))
net = Net(model_dir)
shape = net.cfg["sample_shape"]
classes = net.cfg["classes"]
torch.manual_seed(0)
noise = torch.randn([n] + shape)
os.makedirs(out, exist_ok=True)
save_file({"noise": noise.contiguous()}, f"{out}/noise.safetensors")
src = json.load(open(f"{model_dir}/scheduler/scheduler_config.json"))
common = dict(num_train_timesteps=src["num_train_timesteps"], beta_start=src["beta_start"],
              beta_end=src["beta_end"], beta_schedule=src["beta_schedule"], prediction_type="epsilon")
scheds = {
    "ddim": DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True, timestep_spacing="leading"),
    "euler": EulerDiscreteScheduler(**common, timestep_spacing="linspace"),
}
cls = torch.tensor([i % classes for i in range(n)])
null = torch.full((n,), classes)
for name, s in scheds.items():
    # A copy of the model folder whose scheduler config diffusers wrote itself.
    folder = f"{out}/{name}-model"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(model_dir, folder)
    s.save_config(f"{folder}/scheduler")
    s.set_timesteps(steps)
    x = noise * s.init_noise_sigma
    with torch.no_grad():
        for t in s.timesteps:
            inp = s.scale_model_input(torch.cat([x, x]), t)
            tt = torch.full((2 * n,), float(t))
            e = net(inp, tt, torch.cat([cls, null]))
            ec, eu = e[:n], e[n:]
            eps = eu + w * (ec - eu)
            x = s.step(eps, t, x).prev_sample
    save_file({"samples": x.contiguous()}, f"{out}/{name}-diffusers.safetensors")
    print(name, "timesteps", [round(float(v), 3) for v in s.timesteps][:4], "…")
