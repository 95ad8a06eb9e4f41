"""The seed chapter's PyTorch VAE and MLP GAN, timed in their own process.

Run by ``benchmarks.train_step`` as ``python -m benchmarks.torch_worker``: it reads one
JSON command per line on stdin and answers one JSON line on stdout, so the parent can
alternate PyTorch and JAX repeats while the two thread pools never share a process.

Commands:
  ``{"op": "run", "model": "vae"|"gan", "batch": b, "steps": n}`` -> ``{"s_per_step": t}``
  (the first run of a (model, batch) builds it and warms up 3 steps, untimed);
  ``{"op": "quit"}``.
The first line written is ``{"ready": true, "torch": version, "threads": n}``.

The models are the chapter's code (section 19.2 VAE: 784-400-20 with ``fc_mu`` /
``fc_logvar``; section 19.3 generator 100-128-256-784 tanh, discriminator 784-256-128-1
sigmoid) with the parts the chapter leaves out written the usual way: the VAE loss is
``BCE(sum) + KL`` with Adam(1e-3); the GAN step takes the chapter's two losses, with
``fake_imgs.detach()`` in the discriminator loss (without it PyTorch would also
back-propagate into G during the D update, making it slower), Adam(2e-4, betas (0.5, 0.999))
for each player. Data are random tensors of the right shape and range (timing only).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_DIM, VAE_LATENT, GAN_LATENT = 784, 20, 100


# ---- the chapter's code (section 19.2) ---------------------------------------------
class VAE(nn.Module):
    def __init__(self, input_dim, latent_dim):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, 400)
        self.fc_mu = nn.Linear(400, latent_dim)
        self.fc_logvar = nn.Linear(400, latent_dim)
        self.fc3 = nn.Linear(latent_dim, 400)
        self.fc4 = nn.Linear(400, input_dim)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h))

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


# ---- the chapter's code (section 19.3) ---------------------------------------------
class Generator(nn.Module):
    def __init__(self, latent_dim, img_shape):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.ReLU(),
            nn.Linear(128, 256), nn.ReLU(),
            nn.Linear(256, int(np.prod(img_shape))), nn.Tanh(),
        )

    def forward(self, z):
        return self.model(z)


class Discriminator(nn.Module):
    def __init__(self, img_shape):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(int(np.prod(img_shape)), 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 128), nn.LeakyReLU(0.2),
            nn.Linear(128, 1), nn.Sigmoid(),
        )

    def forward(self, img):
        return self.model(img)


# ---- train steps ---------------------------------------------------------------------
def vae_step_fn(batch: int):
    torch.manual_seed(0)
    model = VAE(DATA_DIM, VAE_LATENT)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.bernoulli(torch.full((batch, DATA_DIM), 0.5))

    def step():
        recon, mu, logvar = model(x)
        bce = F.binary_cross_entropy(recon, x, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = (bce + kld) / batch
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def gan_step_fn(batch: int):
    torch.manual_seed(0)
    generator, discriminator = Generator(GAN_LATENT, (DATA_DIM,)), Discriminator((DATA_DIM,))
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_imgs = torch.rand(batch, DATA_DIM) * 2 - 1

    def step():
        z = torch.randn(batch, GAN_LATENT)
        fake_imgs = generator(z)
        d_loss = -torch.mean(torch.log(discriminator(real_imgs)) + torch.log(1 - discriminator(fake_imgs.detach())))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = -torch.mean(torch.log(discriminator(generator(z))))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    return step


BUILDERS = {"vae": vae_step_fn, "gan": gan_step_fn}


def main() -> int:
    steps: dict = {}
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        try:
            k = (cmd["model"], int(cmd["batch"]))
            if k not in steps:
                steps[k] = BUILDERS[k[0]](k[1])
                for _ in range(3):
                    steps[k]()
            n = int(cmd["steps"])
            t0 = time.perf_counter()
            for _ in range(n):
                steps[k]()
            out = {"s_per_step": (time.perf_counter() - t0) / n}
        except Exception as e:  # reported to the parent, which prints it in the row
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
