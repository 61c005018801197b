"""Carbon accounting of a battery: emission factors (yearly country averages, a marginal factor
derived from Chile's marginal cost, measured series from CSV), the accounting engine (caused,
avoided, net, per hour/day/year, per site and fleet) and the battery's embodied emissions.
Pure computation, no I/O beyond reading the given files. docs/carbon.md has the methods."""
