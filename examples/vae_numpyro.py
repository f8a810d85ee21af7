"""A variational autoencoder in ~40 lines: NumPyro model + ``AutoAmortizedIAF`` as the encoder.

    python examples/vae_numpyro.py --plot docs/examples/vae_samples.png   # 20 epochs on 8x8 digits
    python examples/vae_numpyro.py --smoke                                 # 1 epoch (the test suite)

Data: scikit-learn's 8x8 digits, binarized at 8/16 (1797 images, shipped with scikit-learn).
p(z) = N(0, I_8), p(x | z) = Bernoulli(decoder(z)); the guide is the autoguide itself: an MLP
encoder gives (mu, sigma, h) per image, then two gated IAF steps conditioned on h.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO
from sklearn.datasets import load_digits

from numpyro_iaf import AutoAmortizedIAF

Z, H, X = 8, 128, 64                                   # latent, hidden, pixels


def model(x):                                          # x [B, 64]: one minibatch
    w1 = numpyro.param("dec_w1", lambda key: jax.random.normal(key, (Z, H)) / Z**0.5)
    w2 = numpyro.param("dec_w2", lambda key: jax.random.normal(key, (H, X)) / H**0.5)
    b1, b2 = numpyro.param("dec_b1", jnp.zeros(H)), numpyro.param("dec_b2", jnp.zeros(X))
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([Z]).to_event(1))
        logits = jax.nn.elu(z @ w1 + b1) @ w2 + b2
        numpyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


def main(smoke: bool = False, plot: str | None = None) -> None:
    images = (load_digits().data >= 8).astype(np.float32)
    rng = np.random.default_rng(0)
    images = images[rng.permutation(len(images))]
    train, test = jnp.asarray(images[:1500]), jnp.asarray(images[1500:])
    epochs, batch = (1, 100) if smoke else (20, 100)

    guide = AutoAmortizedIAF(model, num_flows=2, context_dim=8, encoder_hidden_dims=(128,))
    svi = SVI(model, guide, numpyro.optim.Adam(3e-3), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0), train[:batch])
    update = jax.jit(svi.update)
    for _ in range(epochs):
        for i in rng.permutation(len(train) // batch):
            state, loss = update(state, train[i * batch:(i + 1) * batch])
    params = svi.get_params(state)
    test_loss = Trace_ELBO(num_particles=16).loss      # jitted: one compilation instead of one per op
    test_elbo = jax.jit(lambda p, x: test_loss(jax.random.PRNGKey(1), p, model, guide, x))(params, test)
    print(f"{epochs} epoch(s) of {len(train) // batch} minibatches: "
          f"test ELBO {-float(test_elbo) / len(test):.2f} nats per image ({len(test)} test images)")

    if plot:
        import matplotlib.pyplot as plt
        z = jax.random.normal(jax.random.PRNGKey(2), (32, Z))
        hidden = jax.nn.elu(z @ params["dec_w1"] + params["dec_b1"])
        probs = jax.nn.sigmoid(hidden @ params["dec_w2"] + params["dec_b2"])
        fig, axes = plt.subplots(4, 8, figsize=(6, 3))
        for ax, p in zip(axes.flat, np.asarray(probs)):
            ax.imshow(p.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.axis("off")
        fig.suptitle("p(x | z) means, z ~ N(0, I)")
        fig.savefig(plot, dpi=80, bbox_inches="tight")
        print(f"wrote {plot}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    parser.add_argument("--plot", default=None, help="PNG of decoded prior samples")
    args = parser.parse_args()
    main(args.smoke, args.plot)
