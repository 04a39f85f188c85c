"""pymeasure Procedures: the measurements an operator queues."""
