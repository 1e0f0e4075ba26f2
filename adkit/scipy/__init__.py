"""scipy for traced values: `adkit.scipy.special` mirrors jax.scipy.special (see there)."""
