"""The live registry of agency endpoints: who this daemon serves, how to reach them, and the
tokens their systems submit with. Kept in the store, changed by integrators while the daemon
runs, every change in the audit log with who made it."""
