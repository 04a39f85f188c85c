"""Station file → validated config → connected role adapters, snapshot and safe state.

```python
from daqapp.station import load_station, Station
station = load_station("station.toml")    # parse + validate only
with station.connect() as conn:           # ConnectedStation
    conn.temperature.temperature()
```
"""

from daqapp.station.config import (
    Limits,
    RoleConfig,
    SafeStateConfig,
    Simulation,
    Station,
    Wiring,
    load_station,
    parse_station,
)
from daqapp.station.connected import ConnectedStation

__all__ = ["ConnectedStation", "Limits", "RoleConfig", "SafeStateConfig", "Simulation",
           "Station", "Wiring", "load_station", "parse_station"]
