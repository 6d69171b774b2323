"""billpay: pay Nigerian bills with cNGN on Stellar. The domain package: no Prefect here."""

__version__ = "0.1.0"
