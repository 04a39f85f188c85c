"""Command parsing, reply formats, terminators, status bytes and error queues."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.simulators.conftest import ask

pytestmark = pytest.mark.timeout(60)


def _exchange(endpoint, payload: bytes, expect_lines: int) -> list[bytes]:
    with socket.create_connection((endpoint.host, endpoint.port), timeout=3) as sock:
        sock.sendall(payload)
        data = b""
        while data.count(endpoint.read_termination.encode()) < expect_lines:
            chunk = sock.recv(4096)
            assert chunk, f"connection closed after {data!r}"
            data += chunk
    return data.split(endpoint.read_termination.encode())[:expect_lines]


@pytest.mark.parametrize("eol", [b"\r", b"\n", b"\r\n"])
def test_any_line_ending_is_accepted(lab, eol):
    ep = lab.endpoints["lockin"]
    lines = _exchange(ep, b"*IDN?" + eol + b"SENS?" + eol, 2)
    assert lines[0].startswith(b"Stanford_Research_Systems,SR830")
    assert lines[1] == b"26"


def test_reply_terminators_per_instrument(lab):
    raw = {}
    for role in ("lockin", "current_source", "temperature"):
        ep = lab.endpoints[role]
        with socket.create_connection((ep.host, ep.port), timeout=3) as sock:
            sock.sendall(b"*IDN?\n")
            data = b""
            while not data.endswith(b"\n"):
                data += sock.recv(4096)
            raw[role] = data
    assert raw["lockin"].endswith(b"ver1.07\n")
    assert raw["current_source"].endswith(b"/700x \n")
    assert raw["temperature"].endswith(b"2.9\r\n")


def test_ami430_sends_greeting_on_connect(lab):
    ep = lab.endpoints["magnet"]
    with socket.create_connection((ep.host, ep.port), timeout=3) as sock:
        data = b""
        while data.count(b"\r\n") < 2:
            data += sock.recv(4096)
    assert data == b"American Magnetics Model 430 IP Interface\r\nHello.\r\n"


def test_several_clients_at_once(lab):
    ep = lab.endpoints["temperature"]
    results = []

    def client():
        with socket.create_connection((ep.host, ep.port), timeout=5) as sock:
            for _ in range(20):
                sock.sendall(b"KRDG? A\n")
                data = b""
                while not data.endswith(b"\r\n"):
                    data += sock.recv(4096)
                results.append(float(data))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 80
    assert all(1.4 < v < 1.6 for v in results)


def test_sr830_pymeasure_quirks_and_errors(frozen_lab):
    lia = frozen_lab.emulators["lockin"]
    lia.handle("*CLS")
    lia.handle("SRAT4.000000")                  # an integer written as a float
    assert ask(lia, "SRAT?") == "4"
    lia.handle("FREQ1.23450e+02")
    assert ask(lia, "FREQ?") == "123.45"
    lia.handle("AUXV2,0.250000;")
    assert ask(lia, "AUXV?2;") == "0.25"
    assert lia.handle("SENS5;SENS?;OFLT?") == ["5", "10"]   # one reply per query
    assert ask(lia, "*ESR?") == "0"
    lia.handle("SENS 27")                        # out of range: execution error, kept value
    assert ask(lia, "SENS?") == "5"
    assert int(ask(lia, "*ESR?")) & 16
    assert lia.handle("BOGUS?") == []             # illegal command: no reply, ESR bit 5
    assert int(ask(lia, "*ESR?")) & 32
    lia.handle("SLVL 0.0041")
    assert ask(lia, "SLVL?") == "0.004"          # 2 mV steps
    lia.handle("PHAS 540")
    assert ask(lia, "PHAS?") == "180" or ask(lia, "PHAS?") == "-180"


def test_sr830_buffer_ascii_transfer(frozen_lab):
    lab = frozen_lab
    lia = lab.emulators["lockin"]
    lia.handle("REST;SRAT 4;SEND 0;STRT")        # 1 Hz
    lab.clock.advance(5.5)
    lia.handle("PAUS")
    n = int(ask(lia, "SPTS?"))
    assert n == 5
    trace = ask(lia, f"TRCA? 1,0,{n}")
    assert trace.endswith(",") and trace.count(",") == n
    [float(v) for v in trace.rstrip(",").split(",")]
    assert lia.handle(f"TRCA? 1,0,{n + 1}") == []   # beyond the stored points: error
    assert int(ask(lia, "*ESR?")) & 16


def test_keithley_scpi_forms(frozen_lab):
    k = frozen_lab.emulators["current_source"]
    k.handle("status:queue:clear;*RST;:stat:pres;:*CLS;")
    assert ask(k, "SYST:ERR?") == '0,"No error"'
    k.handle(":SOUR:CURR:RANG:AUTO 0;:SOUR:CURR:RANG 1e-3")
    assert float(ask(k, "SOURCE:CURRENT:RANGE?")) == pytest.approx(2e-3)
    k.handle("SOUR:DELT:HIGH 1e-3;LOW -5e-4")   # LOW relative to the SOUR:DELT path
    assert float(ask(k, ":source:delta:low?")) == pytest.approx(-5e-4)
    k.handle("SOUR:CURR 0.2")                   # beyond ±105 mA
    assert ask(k, "SYST:ERR?").startswith("-222")
    k.handle(":SOUR:FOO 1")
    assert ask(k, "SYST:ERR?") == '-113,"Undefined header"'
    assert k.handle("SENS:DATA?") == []        # nothing measured yet: no reply, -230 queued
    assert ask(k, "SYST:ERR?").startswith("-230")
    assert ask(k, "*STB?") == "0"


def test_scpi_headers_resolve_the_same_from_memory_and_the_memory_stays_bounded(frozen_lab):
    """Resolved headers are remembered (a bus repeats the same few); a repeated, a relative
    and an unknown header give what the first resolution gave, and a stream of ever new
    headers (a fuzzer) cannot grow the memory past its bound."""
    from simulators.instruments.scpi import LOOKUP_CACHE_SIZE

    k = frozen_lab.emulators["current_source"]
    k.handle("*CLS")
    for _ in range(3):  # first from the table, then from memory: same replies and errors
        k.handle("SOUR:DELT:HIGH 2e-3;LOW -1e-3")
        assert float(ask(k, ":source:delta:low?")) == pytest.approx(-1e-3)
        assert float(ask(k, "SOUR:DELT:HIGH?")) == pytest.approx(2e-3)
        k.handle(":SOUR:FOO 1")
        assert ask(k, "SYST:ERR?") == '-113,"Undefined header"'
    for n in range(3 * LOOKUP_CACHE_SIZE):
        k.handle(f"FOO{n}:BAR {n}")
    assert len(k._resolved) <= LOOKUP_CACHE_SIZE
    k.handle("*CLS")
    assert float(ask(k, "SOUR:DELT:HIGH?")) == pytest.approx(2e-3)
    assert ask(k, "SYST:ERR?") == '0,"No error"'


def test_keithley_2182_pass_through(frozen_lab):
    k = frozen_lab.emulators["current_source"]
    k.handle('SYST:COMM:SER:SEND "*IDN?"')
    assert ask(k, "SYST:COMM:SER:ENT?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2182A")
    k.handle("SYST:COMM:SER:SEND ':SENS:VOLT:NPLC 1'")
    k.handle('SYST:COMM:SER:SEND ":SENS:VOLT:NPLC?"')
    assert ask(k, "SYST:COMM:SER:ENT?") == "1"
    assert ask(k, "SOUR:DELT:NVPR?") == "1"


def test_lakeshore_chains_and_formats(frozen_lab):
    ls = frozen_lab.emulators["temperature"]
    assert ask(ls, "KRDG? A;*ESR?").endswith(";0")          # joined with ';'
    ls.handle("PID 1,150,5,0")
    assert ask(ls, "PID? 1") == "+0150.0,+0005.0,+000.0"
    ls.handle("RAMP 1,1,2.5")
    assert ask(ls, "RAMP? 1") == "1,+2.500"
    ls.handle("OUTMODE 1,1,2,0")
    assert ask(ls, "OUTMODE? 1") == "1,2,0"
    assert ls.handle("NOTACMD?") == []                       # no reply; ESR bit 5
    assert int(ask(ls, "*ESR?")) & 32
    ls.handle("RANGE 1,7")
    assert int(ask(ls, "*ESR?")) & 16
    assert ask(ls, "RDGST? A") == "0"
    assert ask(ls, "RDGST? C") == "1"                        # no sensor on C


def test_ami430_units_and_errors(frozen_lab):
    ami = frozen_lab.emulators["magnet"]
    assert ask(ami, "FIELD:UNITS?") == "0"
    assert float(ask(ami, "COIL?")) == pytest.approx(1.0)    # kG/A
    ami.handle("CONF:FIELD:UNITS 1")
    assert float(ask(ami, "COIL?")) == pytest.approx(0.1)    # T/A
    ami.handle("CONF:FIELD:TARG 50")                          # beyond 9 T
    assert ask(ami, "SYST:ERR?").startswith("-105")
    ami.handle("FLUX:CAPACITOR")
    assert ask(ami, "SYST:ERR?") == '-101,"Unrecognized command"'
    assert ask(ami, "PS:INST?") == "1"
    assert ask(ami, "STATE?") == "8"


def test_2182_overflow_and_range(frozen_lab):
    lab = frozen_lab
    lab.emulators["lockin"].handle("AUXV1,5.0")            # ~40 mV across the contact
    nv = lab.emulators["nanovoltmeter"]
    replies, busy = nv.execute(":SENS:VOLT:CHAN1:RANG 0.01;:READ?")
    assert replies == ["+9.9E37"]
    assert busy == pytest.approx(2 * 5 / 60 + 0.004)        # NPLC 5, auto-zero on
    replies, _ = nv.execute(":SENS:VOLT:CHAN1:RANG:AUTO 1;:READ?")
    assert float(replies[0]) == pytest.approx(lab.bench.junction_dc()[1], rel=1e-3)
    replies, _ = nv.execute(":SENS:FUNC?")
    assert replies == ['"VOLT:DC"']


def test_oxford_framing(frozen_lab):
    from simulators.lab import VirtualLab

    lab = VirtualLab(speed=1e-6, seed=1, temperature_model="itc503", magnet_model="ips120")
    itc = lab.emulators["temperature"]
    assert ask(itc, "V").startswith("ITC503")
    assert itc.handle("$C3") == []                           # $: no reply
    assert ask(itc, "@1X") == "X0A0C3S00H1L0"                # ISOBUS prefix
    assert ask(itc, "T12.5") == "T"
    assert ask(itc, "R0") == "R+12.500"
    assert ask(itc, "Z") == "?Z"
    ips = lab.emulators["magnet"]
    assert ask(ips, "X") == "X00A4C0H1M00P00"
    assert ask(ips, "R24") == "R+12.000"


def test_sr830_time_constant_limit_and_reference_unlock(frozen_lab):
    lia = frozen_lab.emulators["lockin"]
    lia.handle("FREQ 100;OFLT 15;LIAS?")
    assert ask(lia, "OFLT?") == "15"             # 300 s is allowed at 100 Hz
    lia.handle("FREQ 1000")                      # crossing 200 Hz lowers τ to 30 s itself
    assert ask(lia, "OFLT?") == "13"
    lias = int(ask(lia, "LIAS?"))
    assert lias & 32 and lias & 16
    lia.handle("OFLT 14")
    assert ask(lia, "OFLT?") == "13" and int(ask(lia, "*ESR?")) & 16
    lia.handle("FMOD 0")                         # external reference, nothing on REF IN
    float(ask(lia, "OUTP?1"))
    assert int(ask(lia, "LIAS? 3")) == 1
