"""Fleet simulator: `python -m host_sim run` (real firmware Agents on host boards, scenarios)."""
