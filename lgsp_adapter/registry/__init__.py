"""The live registry of agency endpoints: who this daemon serves, how to reach them, and the
tokens their systems submit with (and the secrets they sign with, sealed); and the agency
list, who the exchange knows. Kept in the
store, changed by integrators while the daemon runs, every change in the audit log with who
made it.

What it needs from a store is a protocol of its own (``records.RegistryStore``,
``agency_list.AgencyListStore``), so it sits below the store layer: it may import
``translators``, ``audit``, ``packets`` and ``errors``.
"""
