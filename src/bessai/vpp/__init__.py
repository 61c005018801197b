"""OpenADR 3.1: the VEN a gateway site runs toward a utility's or aggregator's VTN
(`bessai.vpp.ven`), and a VTN the fleet backend can serve to its own sites (`bessai.vpp.vtn`).
See docs/vpp.md."""
