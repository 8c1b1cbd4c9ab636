// The live feed of /activity: one list item per event from /activity/events.
"use strict";
const feed = document.getElementById("feed");
const source = new EventSource("/activity/events");
source.addEventListener("activity", (message) => {
  const event = JSON.parse(message.data);
  const item = document.createElement("li");
  item.className = "card activity " + event.kind;
  item.textContent = event.kind === "purchase"
    ? `${event.at} · ${event.user} a acheté ${event.article} (${event.price})`
    : `${event.at} · ${event.user} a créé un compte`;
  document.getElementById("empty")?.remove();
  feed.prepend(item);
});
