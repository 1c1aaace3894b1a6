"""Gate kinds whose verdict is pure computation (one module per kind)."""
