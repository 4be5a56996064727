"""What the machine offers a run, measured rather than assumed: the device and seeding
(``devices``), native bfloat16 and the precision ``auto`` picks, CPU threads for a step's work
(``threads``), and stopping cleanly on SIGINT/SIGTERM/SIGHUP (``interrupts``).
May import: ``core``.
"""
