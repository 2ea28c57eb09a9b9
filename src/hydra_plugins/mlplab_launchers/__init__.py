"""mlplab's Hydra launchers: Hydra finds plugins only under the `hydra_plugins` namespace package."""
