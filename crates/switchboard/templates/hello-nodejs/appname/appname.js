// The backend of {{ appname }}: a WAMP client in Node.js that the Switchboard node runs as a guest
// worker (.crossbar/config.json: "type": "guest"), restarts when it fails and restarts when a
// file in this folder changes; what it prints appears in the node's log.
//
// It registers com.example.add2, subscribes to com.example.onhello and publishes an increasing
// integer to com.example.oncounter every second. The page in web/index.html calls it.
'use strict';

if (typeof WebSocket === 'undefined') {
  console.error('Autobahn|JS needs the global WebSocket: Node.js 22 or later '
    + '(on Node.js 20 or 21, start the node with NODE_OPTIONS=--experimental-websocket)');
  process.exit(1);
}
const autobahn = require('autobahn');

// The node passes the router's address in the guest's environment (options.env.vars).
const url = process.env.CBURL || 'ws://127.0.0.1:8080/ws';
const realm = process.env.CBREALM || 'realm1';

let publishing;
const connection = new autobahn.Connection({ url, realm });

connection.onopen = async (session) => {
  await session.subscribe('com.example.onhello', ([message]) => {
    console.log(`event for com.example.onhello: ${message}`);
  });
  // Registered last: a page that got an answer from add2 knows the backend listens too.
  await session.register('com.example.add2', ([x, y]) => x + y);
  console.log(`{{ appname }} backend joined ${realm} as session ${session.id}: `
    + 'subscribed to com.example.onhello, registered com.example.add2');
  let counter = 0;
  publishing = setInterval(() => {
    session.publish('com.example.oncounter', [counter]);
    counter += 1;
  }, 1000);
};

connection.onclose = (reason, details) => {
  clearInterval(publishing);
  console.log(`connection ${reason}${details.will_retry ? ', reconnecting' : ''}`);
  // Gone for good: exit non-zero, and the node starts the backend again after a pause.
  if (!details.will_retry) process.exit(1);
};

connection.open();
