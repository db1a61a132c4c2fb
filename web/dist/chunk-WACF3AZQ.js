/*! livehub dashboard */
function r(e,n){return Object.assign(new Error(n),{code:e})}export{r as a};
