"""Research instruments around maestro_lit: the controlled testbeds and the simulator.

They measure whether a method helps; the product (``maestro_lit``) never imports this package."""
