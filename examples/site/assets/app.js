// Proves the script was served with a JavaScript content type and ran.
document.getElementById("status").textContent =
  "JavaScript ran: served at " + new Date().toLocaleTimeString() + ".";
