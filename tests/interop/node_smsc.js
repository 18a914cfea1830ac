// A foreign SMSC for otpgate's interop test: node-smpp's server (npm "smpp", installed by .ci/run).
// Prints {"port": N} once listening, then one JSON line per submit_sm it accepts. Checks the
// bind, answers with hex message ids, and sends a delivery receipt when one is asked for.
"use strict";
const smpp = require("smpp");

let next = 0x1000;
const server = smpp.createServer((session) => {
  let bound = false;
  session.on("bind_transceiver", (pdu) => {
    const ok = pdu.system_id === "otpgate" && pdu.password === "secret";
    session.send(pdu.response({ command_status: ok ? smpp.ESME_ROK : smpp.ESME_RBINDFAIL }));
    bound = ok;
  });
  session.on("submit_sm", (pdu) => {
    if (!bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const id = (next++).toString(16);
    session.send(pdu.response({ message_id: id }));
    const sm = pdu.short_message || {};
    const message = typeof sm.message === "string" ? sm.message : Buffer.from(sm.message || []).toString("hex");
    const udh = sm.udh ? Buffer.concat(sm.udh.map((u) => Buffer.from(u))).toString("hex") : null;
    process.stdout.write(JSON.stringify({
      id, to: pdu.destination_addr, dest_ton: pdu.dest_addr_ton, from: pdu.source_addr,
      data_coding: pdu.data_coding, esm_class: pdu.esm_class, udh, text: message,
      registered_delivery: pdu.registered_delivery,
    }) + "\n");
    if (pdu.registered_delivery & 0x01) {
      setTimeout(() => {
        session.deliver_sm({
          source_addr: pdu.destination_addr,
          destination_addr: pdu.source_addr,
          esm_class: 0x04,
          short_message: `id:${id} sub:001 dlvrd:001 submit date:2611251200 done date:2611251200 stat:DELIVRD err:000 text:`,
          receipted_message_id: id,
          message_state: 2,
        });
      }, 20);
    }
  });
  session.on("enquire_link", (pdu) => session.send(pdu.response()));
  session.on("unbind", (pdu) => {
    session.send(pdu.response());
    session.close();
  });
  session.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
process.on("SIGTERM", () => process.exit(0));
