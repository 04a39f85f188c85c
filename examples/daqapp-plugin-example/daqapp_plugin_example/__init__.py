"""Example daqapp plug-in: the Acme TC-1, a one-loop temperature controller that does not
exist, with everything a real instrument needs to join a station."""
