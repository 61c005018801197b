"""Plant physics: battery, thermal, degradation, PV, load and the site that ties them together.

Pure computation (numpy, no I/O), importable without the gateway. Import from the submodules
(`bessai.plant.site`, `bessai.plant.battery`, ...); this package file stays empty so that
`bessai.plant.env` (and gymnasium) load only when asked for."""
