'use strict';
// A backend hosted by the router as a guest worker (tests/interop/js/test/guest.test.js):
// Autobahn|JS over RawSocket to the router that started it; registers com.example.add2 and
// publishes an increasing counter to com.example.oncounter. It writes its pid to
// $GUEST_PID_FILE and says "backend ready" on stdout once registered, so the test can find both.
//
//   node backend.js <port> <realm>

const fs = require('node:fs');
const autobahn = require('autobahn');

const [port, realm] = process.argv.slice(2);
fs.writeFileSync(process.env.GUEST_PID_FILE, String(process.pid));

const connection = new autobahn.Connection({
  transports: [{ type: 'rawsocket', host: '127.0.0.1', port: Number(port) }],
  realm,
  max_retries: -1,
  initial_retry_delay: 0.2,
});

connection.onopen = (session) => {
  session.register('com.example.add2', (args) => args[0] + args[1]).then(() => {
    console.log('backend ready');
    let counter = 0;
    setInterval(() => {
      session.publish('com.example.oncounter', [counter++]);
    }, 100);
  }, (err) => {
    console.error(`register failed: ${err.error}`);
    process.exit(1);
  });
};

connection.open();
