// This app's own script: point the Jobline elements at the gateway, with tokens from our backend.
const { gateway, tokens } = document.body.dataset;
const { configure } = await import(`${gateway}/jobline.js`);

configure({
  gateway,
  // A stream token for the jobs this page shows, and only those (our backend asks Jobline for it).
  token: tokens ? async (purpose, { jobs }) => {
    const query = new URLSearchParams({ purpose, jobs: jobs.join(",") });
    return (await (await fetch(`/token?${query}`)).json()).token;
  } : null,
});

// After the element's upload, go to this app's own page for the job (as the plain form does).
document.getElementById("upload")?.addEventListener("jobline-submitted", (event) => {
  location.href = `/jobs/${event.detail.id}`;
});
