// This app's own script: point the Jobline elements at the gateway, with tokens from our backend.
const { gateway, tokens } = document.body.dataset;
const { configure } = await import(`${gateway}/jobline.js`);

configure({
  gateway,
  // A token from our backend, made for the signed-in user: it reads that user's jobs and no other.
  token: tokens ? async (purpose, { jobs }) => {
    const query = new URLSearchParams({ purpose, jobs: jobs.join(",") });
    return (await (await fetch(`/token?${query}`)).json()).token;
  } : null,
});

// After the element's upload, go to this app's own page for the job (as the plain form does).
document.getElementById("upload")?.addEventListener("jobline-submitted", (event) => {
  location.href = `/jobs/${event.detail.id}`;
});
