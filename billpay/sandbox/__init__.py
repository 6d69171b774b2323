"""Local simulators of Flutterwave, VTpass and Horizon speaking the real wire formats."""
