// Sending a body with an upload bar: XMLHttpRequest, because fetch() reports no upload progress.
// Used by the dashboard's new-job form (a raw file to /api/uploads) and <jobline-upload> (a
// multipart job with its file).

/** POST `body` to `url`; `onProgress(percent)` as it goes; resolves with the JSON answer when its
 *  status is `expect`, rejects with the problem's detail otherwise. */
export function sendWithProgress(url, body, { expect, headers = {}, onProgress = () => {} }) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(Math.round((event.loaded / event.total) * 100));
    };
    request.onload = () => {
      let answer = null;
      try { answer = JSON.parse(request.responseText); } catch { /* not JSON */ }
      if (request.status === expect && answer) resolve(answer);
      else reject(new Error(answer?.detail || `upload failed (${request.status})`));
    };
    request.onerror = () => reject(new Error("the upload could not reach Jobline"));
    request.send(body);
  });
}
