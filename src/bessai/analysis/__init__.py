"""Analysis on real prices: the day-ahead back-test, settlement of plans, forecast evaluation
by back-test capture, and their commands (`bessai backtest`, `bessai forecast eval`).

Layering: this package sits above `bessai.optimize` and `bessai.market` and may import both;
neither imports it."""
