"""The checker's rules, one module per family. Each rule is a function of the ELF file and a
frozen `Context` that yields findings and requirements (report.py); rules keep no state, and
their user messages are module-level templates beside them."""
