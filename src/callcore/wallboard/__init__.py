"""The live wallboard: one self-contained page served at ``/wallboard`` for supervisors (docs/wallboard.md)."""
