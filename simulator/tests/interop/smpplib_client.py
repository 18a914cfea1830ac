"""A foreign SMPP client (python smpplib) against smsc-sim.

Binds as a transceiver, sends a short GSM 03.38 message and a long UCS-2 message split by
smpplib itself (UDH parts), asks for a receipt for every part, and waits for them. Prints a JSON
summary for the Rust test that runs it: simulator/tests/interop.rs.

Usage: smpplib_client.py HOST PORT SHORT_TO LONG_TO
"""
import json
import sys
import time

import smpplib.client
import smpplib.consts
import smpplib.gsm

SHORT_TEXT = "Your verification code is 123456."
LONG_TEXT = ("Ваш код подтверждения 654321. " * 4).strip()


def main():
    host, port, short_to, long_to = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    client = smpplib.client.Client(host, port, timeout=10, allow_unknown_opt_params=True)
    submitted, receipts = [], []
    client.set_message_sent_handler(lambda pdu: submitted.append(pdu.message_id.decode()))

    def on_deliver(pdu):
        receipted = getattr(pdu, "receipted_message_id", None) or b""
        receipts.append({
            "esm_class": pdu.esm_class,
            "receipted_message_id": receipted.decode() if isinstance(receipted, bytes) else str(receipted),
            "text": pdu.short_message.decode("ascii", errors="replace"),
        })

    client.set_message_received_handler(on_deliver)
    client.connect()
    client.bind_transceiver(system_id="tester", password="pw")
    parts_sent = 0
    for destination, text in ((short_to, SHORT_TEXT), (long_to, LONG_TEXT)):
        parts, encoding, esm_class = smpplib.gsm.make_parts(text)
        for part in parts:
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr="INTEROP",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr=destination,
                short_message=part,
                data_coding=encoding,
                esm_class=esm_class,
                registered_delivery=True,
            )
            parts_sent += 1
    deadline = time.time() + 10
    while (len(submitted) < parts_sent or len(receipts) < parts_sent) and time.time() < deadline:
        client.read_once()
    client.unbind()
    client.disconnect()
    print(json.dumps({
        "parts_sent": parts_sent,
        "submitted": submitted,
        "receipts": receipts,
        "short_text": SHORT_TEXT,
        "long_text": LONG_TEXT,
    }))


if __name__ == "__main__":
    main()
