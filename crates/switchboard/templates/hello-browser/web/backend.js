// The backend of {{ appname }}, in the browser: its own WAMP session registers com.example.add2,
// subscribes to com.example.onhello and publishes an increasing integer to com.example.oncounter
// every second. The first open page is the backend; another page finds add2 taken and only
// shows what the first one does.
'use strict';

(() => {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const transports = [
    { type: 'websocket', url },
    { type: 'longpoll', url: `${location.protocol}//${location.host}/lp` },
  ];
  const show = (text) => { document.getElementById('backend').textContent = text; };
  let publishing;
  const connection = new autobahn.Connection({ transports, realm: 'realm1' });

  connection.onopen = async (session) => {
    // Subscribed first: a page that got an answer from add2 knows the backend listens too.
    const hello = await session.subscribe('com.example.onhello', ([message]) => {
      console.log(`event for com.example.onhello: ${message}`);
    });
    try {
      await session.register('com.example.add2', ([x, y]) => x + y);
    } catch (err) {
      show(`not the backend: ${err.error || err} (another page is)`);
      await session.unsubscribe(hello);
      connection.close();
      return;
    }
    show(`session ${session.id}: registered com.example.add2, subscribed to com.example.onhello, `
      + 'publishing to com.example.oncounter');
    let counter = 0;
    publishing = setInterval(() => {
      session.publish('com.example.oncounter', [counter]);
      counter += 1;
    }, 1000);
  };
  connection.onclose = () => { clearInterval(publishing); };
  connection.open();
})();
