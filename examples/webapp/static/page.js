// This app's own script: point the Jobline elements at the gateway, with tokens from our backend.
const { gateway, tokens } = document.body.dataset;
const { configure } = await import(`${gateway}/jobline.js`);

configure({
  gateway,
  token: tokens ? async (purpose) => (await (await fetch(`/token?purpose=${purpose}`)).json()).token : null,
});

// After the element's upload, go to this app's own page for the job (as the plain form does).
document.getElementById("upload")?.addEventListener("jobline-submitted", (event) => {
  location.href = `/jobs/${event.detail.id}`;
});
