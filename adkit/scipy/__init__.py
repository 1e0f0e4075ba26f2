"""scipy for traced values, as jax.scipy: `adkit.scipy.special` mirrors jax.scipy.special and
`adkit.scipy.stats` mirrors jax.scipy.stats (drop-in densities of scipy.stats' common
distributions, with scipy's arguments); see each module. Neither imports scipy on import."""
