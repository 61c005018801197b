"""An OpenADR 3.1.0 VTN: programs, events targeted at VENs or groups, the VEN and resource
registry, reports, subscriptions with webhook notifications, and an OAuth2 token endpoint.

`vtn_router(vtn)` is a self-contained FastAPI router (no app-level handlers needed): the fleet
backend mounts it with one `include_router` call; `bessai vpp vtn serve` runs it alone.
"""
