// The frontend of {{ appname }}: over WebSocket to the node that serves this page, it calls
// com.example.add2, shows each event on com.example.oncounter and, once the backend answered,
// says hello on com.example.onhello. The backend registers, publishes and subscribes the other
// side.
'use strict';

const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
// WebSocket first; a browser without it falls back to WAMP over HTTP long-poll.
const transports = [
  { type: 'websocket', url },
  { type: 'longpoll', url: `${location.protocol}//${location.host}/lp` },
];
const show = (id, text) => { document.getElementById(id).textContent = text; };

// The backend may still be starting when the page loads: ask again until add2 is registered.
function callAdd2(session) {
  session.call('com.example.add2', [2, 3]).then(
    (sum) => {
      show('add2', String(sum));
      // The backend answers, so it listens: say hello.
      session.publish('com.example.onhello', [`Hello from ${navigator.userAgent}`]);
    },
    (err) => {
      if (err.error === 'wamp.error.no_such_procedure' && session.isOpen) {
        show('add2', 'waiting for the backend to register com.example.add2 …');
        setTimeout(() => callAdd2(session), 1000);
      } else {
        show('add2', `error: ${err.error || err}`);
      }
    });
}

const connection = new autobahn.Connection({ transports, realm: 'realm1' });
connection.onopen = (session) => {
  const transport = connection.transport.info;
  show('status', `connected over ${transport.type} to ${transport.url}, realm realm1, session ${session.id}`);
  session.subscribe('com.example.oncounter', ([counter]) => show('counter', String(counter)));
  callAdd2(session);
};
connection.onclose = (reason, details) => {
  show('status', `connection ${reason}${details.will_retry ? ', reconnecting …' : ''}`);
};
connection.open();
